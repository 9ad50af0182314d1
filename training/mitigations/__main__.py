"""List the mitigations: `python -m training.mitigations`."""
from training.mitigations import get, names

for name in names():
    print(f"{name:8} {get(name).description}")
