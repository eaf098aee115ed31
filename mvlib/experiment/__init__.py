"""An experiment's set-up: profiles (sizes, budgets, seeds), the data set a profile names
(`prepare`), and a run's config and folder in the run store."""
