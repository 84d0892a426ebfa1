"""What the notebooks use beyond the model: exercise checkers (and one checker module per notebook in `checks/`),
plots, the date-normalisation task of notebook 01, and the smoke demo (`make smoke`)."""
