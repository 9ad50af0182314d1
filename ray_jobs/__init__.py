"""Entry points and orchestration: the only code that calls ray.init, builds the Tuner or opens
the MLflow parent run. Stage packages (generation, training, evaluation) never import this."""
