"""Every error that means "the user must change something", in one place.

Each message is written for the user as is: the CLI prints it as one `error:` line and exits 2,
a Train worker reports it instead of raising (so Ray does not retry it), and nothing else
catches them. Errors that are not here (a crashed worker, a lost node) are infrastructure
faults: Ray retries those.

    python -m bias.errors      # list them
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run; the message is meant for the user as is."""


class MissingDataError(FileNotFoundError):
    """A dataset the run needs is absent; the message says which and how to get it."""


class ModelUnavailableError(RuntimeError):
    """The model cannot be found or built here; the message says how to get it."""


class NotEnoughDataError(ValueError):
    """The pool cannot fill the requested mix; the message says how many rows are missing."""


class ClusterTooSmallError(RuntimeError):
    """One trial needs more than the whole cluster has."""


class PreflightError(RuntimeError):
    """What pre-flight found; the message is one paragraph for the user."""


class ExperimentError(RuntimeError):
    """A run that cannot go on; the message is for the user."""


class JobError(ExperimentError):
    """A job server that cannot be reached or used, or a job that does not exist."""


class TrackingUnreachableError(RuntimeError):
    """The MLflow tracking URI cannot be used; the message names it and says why."""


# The key a Train worker reports a user error under (training/lora_loop.py): the driver ends the
# cell as failed, with that message, instead of retrying it.
USER_ERROR_KEY = "user_error"

# What the CLI turns into one line and exit 2. LookupError: an unknown name (task, experiment).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, MissingDataError, ModelUnavailableError, NotEnoughDataError,
    ClusterTooSmallError, PreflightError, ExperimentError, TrackingUnreachableError, LookupError)

# What a Train worker reports as the cell's failure instead of raising (no retry).
WORKER_USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, MissingDataError, ModelUnavailableError, NotEnoughDataError)


if __name__ == "__main__":
    for error in USER_ERRORS:
        print(f"{error.__name__:26} {(error.__doc__ or '').strip()}")
