# Tables and plots of the whole study, rebuilt from the cell folders alone; the report job also
# logs them to the study's parent MLflow run. `snakemake --report` bundles what is marked report().
# The names of the tables and plots are the library's (sfsrnet.study.TABLES, PLOTS).
from sfsrnet.study import PLOTS, TABLES


rule report:
    input:
        expand(f"{STUDY_DIR}/cells/{{cell}}/summary.json", cell=CELLS),
    output:
        **{
            f"{name}_csv": report(
                f"{STUDY_DIR}/tables/{name}.csv",
                caption=f"../report/{name}.rst",
                category="Tables",
                labels={"table": name},
            )
            for name in TABLES
        },
        **{
            f"{name}_{ext}": f"{STUDY_DIR}/tables/{name}.{ext}"
            for name in TABLES
            for ext in ("md", "tex")
        },
        **{
            f"plot_{name}": report(
                f"{STUDY_DIR}/plots/{name}.svg",
                caption=f"../report/plot_{name}.rst",
                category="Plots",
                labels={"plot": name},
            )
            for name in PLOTS
        },
        **{f"plot_{name}_png": f"{STUDY_DIR}/plots/{name}.png" for name in PLOTS},
        long=f"{STUDY_DIR}/tables/long.csv",
    log:
        f"{STUDY_DIR}/tables/report.log",
    localrule: True
    conda:
        ENV
    params:
        cli=SFSRNET,
        study_dir=lambda w, output: Path(output.ablation_csv).parent.parent,
    shell:
        "{params.cli} report --study-dir {params.study_dir} > {log} 2>&1"
