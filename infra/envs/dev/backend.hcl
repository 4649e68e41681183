# GCS backend settings of this environment (no credentials: those come from the environment).
# `llm-platform tofu` passes this file to init automatically; --backend-config K=V overrides it.
bucket = "llm-platform-tfstate-dev"
prefix = "envs/dev"
