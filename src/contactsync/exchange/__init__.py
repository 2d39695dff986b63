"""Data Exchange: batch modules (importer, updater, displacer, exporter) over files and databases."""
