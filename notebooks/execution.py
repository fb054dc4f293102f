# %% [markdown]
# # How each page was made
#
# Every notebook of this book was last executed by `make figures` (or `python -m lvae_lib figures
# NOTEBOOK`), which runs it with papermill and keeps, in the notebook's own metadata, when it ran, how
# long it took, its parameters, the records of `results/` it read (budget, model, seed: those its
# figures and tables show, and those its claims weigh, of every budget), the commit of `lvae_lib` and
# the versions that ran it. The table below is read from those metadata, not typed; this
# page is executed after the others, so it is as current as they are. A commit marked `+dirty` ran with
# changes to `lvae_lib/` that were not yet committed.

# %% tags=["parameters", "remove-cell"]
notebooks_dir = ""  # empty: the notebooks folder of the repository

# %% tags=["hide-input"]
from lvae_lib import plots
from lvae_lib.notebooks import execution_table, table

plots.style()
runs = execution_table(notebooks_dir or None)
runs = runs[runs["notebook"] != "execution"]  # this page itself: it runs last, after reading the others
table(runs, drop=["models shown", "claims read", "machine", "versions"])

# %% [markdown]
# The models behind each page's figures and tables, per budget, with the seeds of each, and the records
# its claims weigh:

# %% tags=["hide-input"]
table(runs[["notebook", "models shown", "claims read"]])

# %% [markdown]
# The machines and library versions that executed them:

# %% tags=["hide-input"]
table(runs.groupby(["machine", "versions"], as_index=False)["notebook"].agg(", ".join))

# %% [markdown]
# The notebooks read the records; the records were made by training runs whose own provenance
# (device, threads, seconds, commit, date; for a run resumed across machines or commits, how many
# epochs ran on which device and under which commit) is in each `record.json`, per epoch in its
# `metrics.csv`, and summed up in {doc}`how_to_reproduce`.
