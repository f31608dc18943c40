"""Training samples, fitting, subject-grouped cross-validation and the transfer check."""
