"""Where every stage's artifact lives: one place, used by the Snakemake rules, DVC stages and the CLI."""

SYNTH_DIR = "data/synthetic/{layout}"
INDEX = "data/{ds}/index.csv"
EXCLUDED = "data/{ds}/excluded.csv"
ALIGNED = "data/{ds}/aligned.h5"
ALIGN_QC = "data/{ds}/align_qc"
MAGNIFIED = "data/{ds}/magnified.h5"
MAGNIFY_QC = "data/{ds}/magnify_qc"
TENSORS = "data/{ds}/tensors.h5"
FOLDS = "data/{ds}/folds/{protocol}.csv"
FLOW = "data/{ds}/flow.h5"                    # onset -> apex TV-L1 flow and strain (pipeline/flow.py)
FLOW_QC = "data/{ds}/flow_qc"
APEX_SPOTTING = "data/{ds}/apex_spotting.csv"  # estimated apex against the coded one, per clip
FOLD_DIR = "results/{ds}/{protocol}/{method}/seed{seed}/fold{fold}"   # pipeline/fold_results.py's files
# every fold of a flow network trained in one job (pipeline/baselines/stacked.py)
FOLDS_TRAINED = "results/{ds}/{protocol}/{method}/seed{seed}/folds_trained.h5"
# One configuration's results (pipeline/runs.py): Table 2 and the report of the run whose plan (datasets,
# protocols, methods, seeds and what decides the folds) hashes to {run}; a new plan never finds old ones.
RUN_DIR = "results/runs/{run}"
RUN_TABLE2 = f"{RUN_DIR}/table2.csv"
RUN_METRICS = f"{RUN_DIR}/metrics.json"
RUN_FOLD_METRICS = f"{RUN_DIR}/fold_metrics.csv"
RUN_REPORT = f"{RUN_DIR}/report.html"
RUN_FIGURES = f"{RUN_DIR}/figures"
# The current configuration's run, published where users look (a copy of the run folder's files).
TABLE2 = "results/table2.csv"
REPORT = "results/report.html"
METRICS = "results/metrics.json"          # Table 2's numbers, nested ds/protocol/method, for `dvc metrics show`
FOLD_METRICS = "results/fold_metrics.csv"  # one row per fold, for `dvc plots show`
FIGURES = "results/figures"     # the report's figures as PNGs, for `snakemake --report`

# Ablations (pipeline/ablations.py): artifacts of the stages a setting overrides, under a key that hashes the
# overrides of that stage and every stage upstream of it; a stage with none reads the main pipeline's artifact.
ABLATION_MAGNIFIED = "data/{ds}/ablations/{key}/magnified.h5"
ABLATION_MAGNIFY_QC = "data/{ds}/ablations/{key}/magnify_qc"
ABLATION_TENSORS = "data/{ds}/ablations/{key}/tensors.h5"
ABLATION_FOLD_DIR = "results/ablations/{ds}/{protocol}/{key}/fold{fold}"
ABLATION_FLOW = "data/{ds}/ablations/{key}/flow.h5"
ABLATION_FLOW_QC = "data/{ds}/ablations/{key}/flow_qc"
ABLATION_APEX_SPOTTING = "data/{ds}/ablations/{key}/apex_spotting.csv"
ABLATION_FLOWNET_STORE = "results/ablations/{ds}/{protocol}/{key}/{method}/folds_trained.h5"
ABLATION_FLOWNET_FOLD_DIR = "results/ablations/{ds}/{protocol}/{key}/{method}/fold{fold}"
ABLATION_BENCHMARKS = {   # Snakemake's benchmark files: the wall time of each job an ablation reran
    "magnify": "benchmarks/ablations/magnify/{ds}_{key}.tsv",
    "tensors": "benchmarks/ablations/tensors/{ds}_{key}.tsv",
    "train": "benchmarks/ablations/train/{ds}_{protocol}_{key}_fold{fold}.tsv",
    "flow": "benchmarks/ablations/flow/{ds}_{key}.tsv",
    "flownet_folds": "benchmarks/ablations/flownet_folds/{ds}_{protocol}_{key}_{method}.tsv",
    "flownet": "benchmarks/ablations/flownet/{ds}_{protocol}_{key}_{method}_fold{fold}.tsv",
}
# Spotting (pipeline/spotting/): one folder per long-video dataset (a key of spotting.datasets) and spotter.
SPOTTING_DIR = "results/spotting/{sds}/{spotter}"
SPOTTING_TABLE = "results/spotting.csv"
SPOTTING_REPORT = "results/spotting.html"     # the table and every video's curves
ABLATIONS = "results/ablations.csv"            # one row per setting
ABLATIONS_REPORT = "results/ablations.html"    # the table and one figure per family
ABLATION_FIGURES = "results/ablations/figures"  # the same figures as PNGs
