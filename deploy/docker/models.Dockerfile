# syntax=docker/dockerfile:1.7
#
# An image that only carries model bundles, for deploy/k8s/components/models-from-image (an init container copies
# /models into the pod). busybox gives the init container its `cp`.
#
#   docker build -f deploy/docker/models.Dockerfile --build-context models=./models \
#     -t registry.example.com/danmaku/danmaku-models:2026-11-22 deploy/docker

# Replaced by --build-context models=<folder holding emotion/ and information/>.
FROM scratch AS models

FROM busybox:1.37.0
COPY --from=models / /models/
USER 10001:10001
