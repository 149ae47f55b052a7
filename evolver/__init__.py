"""The evolver: grows the root ViT into a path per task with muNet, trains in PyTorch, exports components to ONNX,
and publishes paths to the server through the SDK. Run it with ``python -m munet_serve.evolver``.

Modules (one job each): `config` (settings and presets), `components` (the module of each component kind),
`root` (timm ViT -> root components), `export` (component <-> weights + ONNX files), `path` (the chain of a path,
candidates), `store` (published components by id), `data` (task datasets as tensors), `train` (one candidate),
`score` (the size-scaled score), `seed` (a pending task's first version), `worker` (the Evolver loop),
`__main__` (command line). Importing this package is cheap; torch loads with the modules that need it.
"""
