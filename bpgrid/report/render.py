"""A Table as Markdown, LaTeX (booktabs + xcolor), a standalone LaTeX document, HTML and CSV."""

from __future__ import annotations

import csv
import html
import io

from bpgrid.data import dataset_label
from bpgrid.report.table import EDGE, PARTIAL, Cell, Table

COLOURS = {"worse": ("yellow!60", "#fff176"), "better": ("cyan!30", "#9ad9f5")}
MD_COLOUR = {"worse": " ▲", "better": " ▼"}
LEGEND = (f"Error (%), best over epochs and LR scales (mean ± std over seeds). {EDGE}: the best "
          f"LR scale is at the edge of the grid; {PARTIAL}: some runs of the cell are missing or "
          f"failed.")
TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "†": r"$^\dagger$", "±": r"$\pm$"}


def number(cell: Cell) -> str:
    text = f"{cell.value:.2f}" if cell.std is None else f"{cell.value:.2f} ± {cell.std:.2f}"
    return text + cell.marks


def plain(cell: Cell) -> str:
    return number(cell) if cell.status == "value" else cell.status


def colour_legend(table: Table) -> str:
    return (f"Coloured: at least {table.threshold:g} points worse (yellow) or better (blue) "
            f"than the {table.labels.get(table.baseline, table.baseline)} column.")


def row_label(dataset: str) -> str:
    return dataset_label(dataset)


def markdown(table: Table) -> str:
    head = ["dataset", *(table.labels[c] for c in table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in table.rows:
        cells = []
        for c in table.columns:
            cell = table.cells[d, c]
            text = plain(cell) if cell.status == "value" else f"*{cell.status}*"
            cells.append(text + MD_COLOUR.get(cell.colour, ""))
        lines.append("| " + " | ".join([row_label(d), *cells]) + " |")
    legend = (f"{LEGEND} ▲ / ▼: at least {table.threshold:g} points worse / better than "
              f"{table.labels.get(table.baseline, table.baseline)}.")
    return f"# {table.grid}\n\n" + "\n".join(lines) + f"\n\n{legend}\n"


def tex_escape(text: str) -> str:
    return "".join(TEX_SPECIALS.get(ch, ch) for ch in text)


def tabular(table: Table) -> str:
    """The booktabs tabular; coloured cells use xcolor's cellcolor (package option table)."""
    spec = "l" + "r" * len(table.columns)
    out = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(["Dataset", *(tex_escape(table.labels[c]) for c in table.columns)])
           + r" \\", r"\midrule"]
    for d in table.rows:
        cells = [tex_escape(row_label(d))]
        for c in table.columns:
            cell = table.cells[d, c]
            text = tex_escape(number(cell)) if cell.status == "value" else \
                rf"\textit{{{cell.status}}}"
            if cell.colour:
                text = rf"\cellcolor{{{COLOURS[cell.colour][0]}}}{text}"
            cells.append(text)
        out.append(" & ".join(cells) + r" \\")
    return "\n".join([*out, r"\bottomrule", r"\end{tabular}"]) + "\n"


def caption(table: Table) -> str:
    return tex_escape(f"{table.grid}. {LEGEND} {colour_legend(table)}")


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
    esc = html.escape
    rows = ["<tr><th>dataset</th>" + "".join(f"<th>{esc(table.labels[c])}</th>"
                                              for c in table.columns) + "</tr>"]
    for d in table.rows:
        tds = []
        for c in table.columns:
            cell = table.cells[d, c]
            style = f' style="background:{COLOURS[cell.colour][1]}"' if cell.colour else ""
            text = esc(plain(cell)) if cell.status == "value" else f"<i>{esc(cell.status)}</i>"
            tds.append(f"<td{style}>{text}</td>")
        rows.append(f"<tr><th>{esc(row_label(d))}</th>{''.join(tds)}</tr>")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{esc(table.grid)}"
            f"</title><style>td,th{{padding:2px 8px;text-align:right}}</style></head><body>\n"
            f"<h1>{esc(table.grid)}</h1>\n<table>\n" + "\n".join(rows) + "\n</table>\n"
            f"<p>{esc(LEGEND)} {esc(colour_legend(table))}</p>\n</body></html>\n")


def csv_table(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "column", "label", "status", "error", "std", "marks", "colour",
                     "best_lr_scale", "runs", "best_run_id"])
    for d in table.rows:
        for c in table.columns:
            cell = table.cells[d, c]
            writer.writerow([d, c, table.labels[c], cell.status,
                             "" if cell.value is None else f"{cell.value:.4f}",
                             "" if cell.std is None else f"{cell.std:.4f}", cell.marks,
                             cell.colour, "" if cell.best_lr_scale is None else cell.best_lr_scale,
                             cell.runs, cell.best_run or ""])
    return buf.getvalue()
