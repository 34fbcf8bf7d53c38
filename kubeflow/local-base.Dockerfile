# A stand-in for python:3.10.13-slim-bookworm made without an image registry: Debian 12 minbase
# (imported from debootstrap by bin/docker-setup) plus the machine's own CPython 3.10.13 tree.
# bin/docker-setup builds it once, with a context holding that tree as python/; the project's
# Dockerfiles then use it through --build-arg BASE_IMAGE=... . Not meant to be built by hand.
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}

# pyenv builds CPython with absolute library paths, so the tree lives at the same path here.
ARG PYTHON_PREFIX

# The shared libraries CPython's extension modules link against (as in python:*-slim), and the
# system CA bundle so update-ca-certificates can add extra certificates later.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsqlite3-0 libffi8 \
      libbz2-1.0 liblzma5 zlib1g libreadline8 libncursesw6 libuuid1 libgdbm6 libexpat1 \
 && rm -rf /var/lib/apt/lists/*

COPY python ${PYTHON_PREFIX}

# The interpreter came without the host's site-packages: pip and setuptools from ensurepip.
# /root must be traversable: the tree is under it and non-root users run it.
RUN chmod 755 /root \
 && for name in python python3 python3.10 pip pip3; do \
      ln -s "${PYTHON_PREFIX}/bin/${name}" /usr/local/bin/${name}; done \
 && "${PYTHON_PREFIX}/bin/python3.10" -m ensurepip --default-pip \
 && python --version && pip --version

ENV LANG=C.UTF-8 \
    PATH=${PYTHON_PREFIX}/bin:$PATH
CMD ["python3"]
