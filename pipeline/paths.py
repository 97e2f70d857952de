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
FOLD_DIR = "results/{ds}/{protocol}/{method}/fold{fold}"
TABLE2 = "results/table2.csv"
REPORT = "results/report.html"
METRICS = "results/metrics.json"          # Table 2's numbers, nested ds/protocol/method, for `dvc metrics show`
FOLD_METRICS = "results/fold_metrics.csv"  # one row per fold, for `dvc plots show`
FIGURES = "results/figures"     # the report's figures as PNGs, for `snakemake --report`
