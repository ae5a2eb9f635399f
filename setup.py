"""The one thing pyproject.toml cannot say: the optional C extension.

``predictor/service/_tree_walk.c`` is the service's single-row tree walk
(``predictor/service/fast_trees.py``). It is built where a C compiler and the
Python headers are there (``scripts/bootstrap.sh`` installs ``gcc`` and
``python3-dev``); where they are not, the install goes on without it and the
service walks the same trees with numpy.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "predictor.service._tree_walk",
            sources=["predictor/service/_tree_walk.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
