"""The evolver: grows the root ViT into a path per task with muNet, trains in PyTorch, exports components to ONNX,
and publishes paths to the server through the SDK. Run it with ``python -m munet_serve.evolver``.

Modules (one job each): `config` (settings and presets), `components` (the module of each component kind),
`root` (timm ViT -> root components), `export` (component <-> weights + ONNX files), `path` (the chain of a path,
candidates), `store` (published components by id), `data` (task datasets as tensors), `train` (one candidate),
`score` (the size-scaled score), `search_space` (hyperparameter lists, the neighbour rule), `locks` (train locks),
`mutate` (a child from a parent), `policy` (parent selection), `executors` (training a generation inline or with
Ray), `publish` (a path to the server), `evolution` (one task iteration), `worker` (the round-robin loop),
`__main__` (command line). Importing this package is cheap; torch loads with the modules that need it.
"""
