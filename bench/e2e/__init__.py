"""End-to-end benchmark harness: pybroker against Apache Kafka on this machine, in one run.

Entry point: ``python bench/run_matrix.py --profile quick`` (see bench/run_matrix.py).

Modules:
  procstat        CPU seconds and RSS of a broker's process tree, from /proc
  targets         the broker under test as a pluggable target (kafka, pybroker)
  java_perf       Kafka's producer/consumer perf-test tools: command lines and output parsers
  rdkafka_driver  the librdkafka (confluent-kafka) driver; a standalone script printing JSON
  matrix          profiles, cells and the runner
  report          bench/RESULTS.md and the PNG plots
"""
