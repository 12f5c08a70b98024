# The corpus of every cell, made once per corpus identity: the embedded corpus is synthesised; a
# real one (wsj0-mix, LibriMix, WHAM!, a folder) is checked and prepared at the study's sample
# rate (resampled from its 16 kHz files, or linked). Its folder is named by the key that the
# library derives from everything that determines the audio (sfsrnet.data.resolve_corpus); the
# spec file beside it is what make-corpus reads. Both are local rules: on a cluster the corpus is
# made where snakemake runs, on the shared filesystem, before any job.


rule corpus_spec:
    output:
        "{corpus}.spec.yaml",
    log:
        "{corpus}.spec.log",
    localrule: True
    conda:
        ENV
    params:
        content=lambda w: corpus_spec(CORPORA[w.corpus]),
    script:
        "../scripts/write_config.py"


rule make_corpus:
    input:
        "{corpus}.spec.yaml",
    output:
        "{corpus}/manifest.json",
    log:
        "{corpus}.log",
    localrule: True
    conda:
        ENV
    threads: LOCAL_CORES
    params:
        cli=SFSRNET,
        out=lambda w: w.corpus,
    shell:
        "{params.cli} make-corpus --config {input} --out {params.out} --jobs {threads} > {log} 2>&1"


# The study plan as `python -m sfsrnet plan` writes it: every cell with its axes, resolved config,
# training identity, SR-off twin and corpus folder.
rule plan:
    output:
        f"{STUDY_DIR}/plan.json",
    log:
        f"{STUDY_DIR}/plan.log",
    localrule: True
    conda:
        ENV
    params:
        content=lambda w: PLAN.as_dict(),
    script:
        "../scripts/write_config.py"
