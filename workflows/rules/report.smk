# Tables of the whole study, rebuilt from the cell folders alone.


rule report:
    input:
        expand(f"{STUDY_DIR}/cells/{{cell}}/summary.json", cell=CELLS),
    output:
        report(
            f"{STUDY_DIR}/tables/ablation.md",
            caption="../report/ablation.rst",
            category="Tables",
        ),
        report_tables(),
    log:
        f"{STUDY_DIR}/tables/report.log",
    localrule: True
    conda:
        ENV
    params:
        cli=SFSRNET,
        study_dir=lambda w, output: Path(output[0]).parent.parent,
    shell:
        "{params.cli} report --study-dir {params.study_dir} > {log} 2>&1"
