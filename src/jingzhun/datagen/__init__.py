"""Seeded data generator: a realistic retail world (customers with duplicate records,
products, orders with returns, web/app/e-mail events) written as Parquet source files.

Later stages are built and benchmarked on it: identity resolution measures itself against
``identity_truth.parquet``; CLV models meet BG/NBD-shaped purchase histories; campaigns meet
consent flags and time zones. See README.md in this folder for the distributions.
"""

from jingzhun.datagen._files import OUTPUT_FILES, OutputFile
from jingzhun.datagen._generate import GenerateReport, generate
from jingzhun.datagen._specs import source_specs

__all__ = ["OUTPUT_FILES", "GenerateReport", "OutputFile", "generate", "source_specs"]
