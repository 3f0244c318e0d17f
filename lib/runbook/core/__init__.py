"""What every step stands on: errors, parameters, target, source, run folders, workers."""
