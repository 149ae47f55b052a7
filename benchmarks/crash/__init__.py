"""The crash-loop benchmark (issue 17): kill -9 of the server under load and of the evolver mid-publish, each
followed by munet-serve check and answers that are unchanged or from a newer committed version."""
