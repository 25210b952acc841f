"""A Table as Markdown, LaTeX (booktabs + xcolor), a standalone LaTeX document, HTML and CSV.

LaTeX and HTML are one pandas Styler: the cells' texts, a yellow/blue background for cells worse/
better than the baseline and italics for cells without a number, written by ``to_latex`` (CSS
converted to ``\\cellcolor`` and ``\\itshape``) and ``to_html``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd
from pandas.io.formats.style import Styler

from bpgrid.report.table import EDGE, PARTIAL, Table

COLOURS = {"worse": "#fff176", "better": "#9ad9f5"}  # yellow, blue
MD_COLOUR = {"worse": " ▲", "better": " ▼"}
LEGEND = (f"Error (%), best over epochs and LR scales (mean ± std over seeds). {EDGE}: the best "
          f"LR scale is at the edge of the grid; {PARTIAL}: some runs of the cell are missing, "
          f"failed or still running.")
TEX = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                     "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                     "^": r"\textasciicircum{}", "†": r"$^\dagger$", "±": r"$\pm$"})


def tex(text: str) -> str:
    """Text as LaTeX source: specials escaped, † and ± as math symbols."""
    return text.translate(TEX)


def cell_text(cell: pd.Series) -> str:
    """A cell's text: the error (± std) with its marks, or its status."""
    if cell.status != "value":
        return cell.status
    spread = "" if pd.isna(cell["std"]) else f" ± {cell['std']:.2f}"
    return f"{cell.value:.2f}{spread}{cell.marks}"


def colour_legend(table: Table) -> str:
    return (f"Coloured: at least {table.threshold:g} points worse (yellow) or better (blue) "
            f"than the {table.column_labels.get(table.baseline, table.baseline)} column.")


def markdown_grid(frame: pd.DataFrame, corner: str = "dataset") -> str:
    """A frame of texts as a Markdown table, its index as the first column."""
    head = [corner, *frame.columns]
    body = ([label, *row] for label, row in zip(frame.index, frame.to_numpy().tolist(),
                                                 strict=True))
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(row) + " |" for row in body)])


def markdown(table: Table) -> str:
    c = table.cells
    text = c.apply(cell_text, axis=1).where(c.status == "value", "*" + c.status + "*")
    text += c.colour.map(lambda colour: MD_COLOUR.get(colour, ""))
    frame = table.wide(text).rename(index=table.row_labels, columns=table.column_labels)
    legend = (f"{LEGEND} ▲ / ▼: at least {table.threshold:g} points worse / better than "
              f"{table.column_labels.get(table.baseline, table.baseline)}.")
    return f"# {table.grid}\n\n{markdown_grid(frame)}\n\n{legend}\n"


def styled(table: Table, escape: Callable[[str], str]) -> Styler:
    """The table as a Styler: texts escaped by ``escape``, colours and italics as CSS."""
    css = (table.cells.colour.map(lambda c: f"background-color: {COLOURS[c]};" if c else "")
           + table.cells.status.map(lambda s: "" if s == "value" else "font-style: italic;"))
    frame = table.wide(table.cells.apply(cell_text, axis=1)).rename_axis(columns="Dataset")
    return (frame.style.apply(lambda _: table.wide(css), axis=None).format(escape)
            .format_index(lambda d: escape(table.row_labels[d]), axis=0)
            .format_index(lambda c: escape(table.column_labels[c]), axis=1))


def tabular(table: Table) -> str:
    """The booktabs tabular; coloured cells use xcolor's cellcolor (package option table)."""
    return styled(table, tex).to_latex(column_format="l" + "r" * len(table.columns),
                                       hrules=True, convert_css=True)


def caption(table: Table) -> str:
    return tex(f"{table.grid}. {LEGEND} {colour_legend(table)}")


def latex(table: Table) -> str:
    """A table float; needs booktabs, graphicx and xcolor with the ``table`` option."""
    return "\n".join([r"\begin{table}[ht]", r"\centering", r"\small",
                      r"\resizebox{\textwidth}{!}{%", tabular(table) + "}",
                      rf"\caption{{{caption(table)}}}", r"\end{table}", ""])


def latex_standalone(table: Table) -> str:
    """A document that compiles on its own with pdflatex."""
    return "\n".join([
        r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
        r"\usepackage{booktabs}", r"\usepackage[table]{xcolor}", r"\usepackage{graphicx}",
        r"\pagestyle{empty}", r"\begin{document}", r"\noindent\resizebox{\textwidth}{!}{%",
        tabular(table) + "}", r"\par\medskip\noindent\small " + caption(table),
        r"\end{document}", ""])


def html_table(table: Table) -> str:
    """A page with the table, its cells styled by CSS, and the legend."""
    esc = html.escape
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{esc(table.grid)}"
            f"</title><style>td,th{{padding:2px 8px;text-align:right}}</style></head><body>\n"
            f"<h1>{esc(table.grid)}</h1>\n{styled(table, esc).set_uuid('table').to_html()}"
            f"<p>{esc(LEGEND)} {esc(colour_legend(table))}</p>\n</body></html>\n")


def csv_table(table: Table) -> str:
    """One line per cell with its best run, so every number traces back to an MLflow run."""
    c = table.cells
    return c.assign(
        label=c.index.get_level_values("column").map(table.column_labels),
        error=c.value.map("{:.4f}".format, na_action="ignore"),
        std=c["std"].map("{:.4f}".format, na_action="ignore"),
    )[["label", "status", "error", "std", "marks", "colour", "best_lr_scale", "runs",
       "best_run"]].rename(columns={"best_run": "best_run_id"}).to_csv(lineterminator="\n")
