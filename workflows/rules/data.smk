# The corpus of every cell, made once per distinct corpus setting: the embedded corpus is
# synthesised; a real one (wsj0-mix, LibriMix, WHAM!, a folder) is checked and prepared at the
# study's sample rate (resampled from its 16 kHz files, or linked). Its folder is named by a hash
# of those settings; the spec file beside it is what make-corpus reads. Both are local rules: on a
# cluster the corpus is made where snakemake runs, on the shared filesystem, before any job.


rule corpus_spec:
    output:
        "{corpus}.spec.yaml",
    log:
        "{corpus}.spec.log",
    localrule: True
    conda:
        ENV
    params:
        content=lambda w: {"data": CORPORA[w.corpus]},
    script:
        "../scripts/write_yaml.py"


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
