# One training job per cell. It reads the cell's training part only (train.yaml: separator,
# system, SR, data, train, seed), so an edit of evaluate.* or mlflow.* reruns evaluation and the
# report, never training. The same command can be rerun by hand:
#   python -m sfsrnet train --config <cell>/train.yaml --out <cell>


rule train_config:
    output:
        f"{STUDY_DIR}/cells/{{cell}}/train.yaml",
    log:
        f"{STUDY_DIR}/cells/{{cell}}/train_config.log",
    localrule: True
    conda:
        ENV
    params:
        content=lambda w: CELLS[w.cell].training_config(),
    script:
        "../scripts/write_config.py"


# last.pt (written after every epoch) is deliberately not an output: Snakemake removes the outputs
# of a failed or killed job, and last.pt must survive so that the rerun resumes from it.
rule train:
    input:
        config=f"{STUDY_DIR}/cells/{{cell}}/train.yaml",
        corpus=cell_corpus,
        init=init_checkpoint,
    output:
        checkpoint=f"{STUDY_DIR}/cells/{{cell}}/checkpoint.pt",
        log_csv=f"{STUDY_DIR}/cells/{{cell}}/train_log.csv",
        summary=f"{STUDY_DIR}/cells/{{cell}}/train.json",
    log:
        f"{STUDY_DIR}/cells/{{cell}}/train.log",
    # Long trainings first; the short evaluations then fill the cores at the end of the study.
    priority: 10
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
    params:
        cli=SFSRNET,
        out=lambda w: f"{STUDY_DIR}/cells/{w.cell}",
    shell:
        "{params.cli} train --config {input.config} --out {params.out} --threads {threads}"
        " > {log} 2>&1"
