"""Shared vocabulary of the study: groups, names, occupations, bias axes, configs, model resolution.

Every stage (generation, training, evaluation) imports from here; nothing here imports a stage
or `ray_jobs`, so the dependency graph stays a tree.
"""
