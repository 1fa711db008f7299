"""Genomics: reading FASTQ/FASTA in parallel byte ranges and counting k-mers (numpy)."""
