# =============================================================================
# bias-inherit: Ray GPU image for the KubeRay definitions in this directory
# (kuberay_raycluster_gpu.yaml, kuberay_rayjob_paper_gender.yaml).
#
#   rayproject/ray:2.60.0-py311-gpu
#   + the pinned dependencies of pyproject.toml ([project.dependencies] plus the
#     `gpu` extra: ray[llm]==2.60.0, vllm==0.29.0), read from pyproject.toml itself
#     so the pins cannot drift from the Python package,
#   + the repository at /home/ray/bias-inherit: the RayJob's runtime_env
#     `working_dir`, uploaded by the KubeRay submitter pod (which runs this image).
#
# The package itself is not pip-installed: code reaches the Ray workers through
# the job's working_dir, so a `ray job submit --working-dir .` from a laptop always
# runs the submitted code, not a stale copy baked into the image.
#
# Build and push (from the repository root; needs BuildKit, the default builder,
# so that image_ray_gpu.Dockerfile.dockerignore next to this file is honoured):
#   docker build -f cluster/image_ray_gpu.Dockerfile \
#     -t ghcr.io/example-org/bias-inherit:0.1.0-ray2.60.0-py311-gpu .
#   docker push ghcr.io/example-org/bias-inherit:0.1.0-ray2.60.0-py311-gpu
# (replace ghcr.io/example-org with your registry, here and in the kuberay_*.yaml)
# =============================================================================
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /home/ray/bias-inherit

# Dependencies first (own layer: only invalidated when pyproject.toml changes).
COPY --chown=ray:users pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm -f /tmp/requirements.txt

# The working tree (filtered by image_ray_gpu.Dockerfile.dockerignore).
COPY --chown=ray:users . .

ENV BIAS_INHERIT_DATA_DIR=/data/bias-inherit \
    HF_HOME=/data/hf-cache \
    PYTHONUNBUFFERED=1
