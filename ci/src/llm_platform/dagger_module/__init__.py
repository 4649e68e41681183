"""The parts of the Dagger module whose API is `llm_platform.main.LlmPlatform`.

The engine imports only `llm_platform.main` (the `dagger.mod` entry point in ci/pyproject.toml);
`main.py` imports what it needs from here, which also registers the `Modelcar` object type.

- `modelcar`: the `Modelcar` object (`build-modelcar` returns it) and the modelcar steps.
- `containers`: the toolbox container and the per-step containers built on it.
- `commands`: the `llm-platform` command lines those containers run (pure, no dagger).
- `models`: the values passed between steps and returned (no dagger at runtime).

Only `modelcar` and `containers` import dagger; nothing outside `llm_platform.main` and this
package does. This file imports nothing, so importing the package stays free of dagger too.
"""
