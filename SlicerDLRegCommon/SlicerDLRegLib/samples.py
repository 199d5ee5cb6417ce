"""The bundled sample volumes in Slicer's Sample Data module (two clicks to try each module)."""

import os


def registerSampleData(iconPath: str) -> None:
    """Register dlreg's sample sets (category SlicerDLReg) with their checksums."""
    import SampleData

    from dlreg.sampledata import sample_data_sources

    for source in sample_data_sources():
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="SlicerDLReg", thumbnailFileName=iconPath if os.path.isfile(iconPath) else None, **source)
