"""Reports: a grid's MLflow runs rebuilt into the paper's error tables and plots."""
