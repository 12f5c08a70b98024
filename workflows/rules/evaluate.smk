# Scores each trained cell on the test split (per-utterance CSV, band CSV, summary, example wavs)
# and logs the cell (training curve included) to MLflow. Its config.yaml is the whole resolved
# cell config: evaluation and MLflow settings included.


rule cell_config:
    output:
        f"{STUDY_DIR}/cells/{{cell}}/config.yaml",
    log:
        f"{STUDY_DIR}/cells/{{cell}}/config.log",
    localrule: True
    conda:
        ENV
    params:
        content=lambda w: CELLS[w.cell].config,
    script:
        "../scripts/write_config.py"


rule evaluate:
    input:
        config=f"{STUDY_DIR}/cells/{{cell}}/config.yaml",
        checkpoint=f"{STUDY_DIR}/cells/{{cell}}/checkpoint.pt",
    output:
        metrics=f"{STUDY_DIR}/cells/{{cell}}/metrics.csv",
        summary=f"{STUDY_DIR}/cells/{{cell}}/summary.json",
    log:
        f"{STUDY_DIR}/cells/{{cell}}/evaluate.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
    params:
        cli=SFSRNET,
        out=lambda w: f"{STUDY_DIR}/cells/{w.cell}",
    shell:
        "{params.cli} evaluate --config {input.config} --checkpoint {input.checkpoint}"
        " --out {params.out} --threads {threads} --no-progress > {log} 2>&1"
