"""The soak benchmark (issue 17): one real munet-serve server process under closed-loop predicts, a publish every
second and a task registration every 30 s for ten minutes; failed requests and the server's resident memory over
time. `python -m benchmarks.soak`."""
