"""List the social biases: `python -m bias.social_biases`."""
from bias.social_biases import get, names

for name in names():
    spec = get(name)
    print(f"{name:8} groups {', '.join(spec.groups)}; seed field {spec.seed_field}; "
          f"BBQ {', '.join(spec.bbq_categories) or '-'}")
