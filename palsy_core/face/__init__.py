"""Face geometry: landmark detectors, topology, alignment, drawn-mark removal, synthetic palsy."""
