"""Test suites other code can run: the contracts every backend honours.

An outside backend runs them by subclassing in its own tests (fsspec-style)::

    from facetrail.testing.backend_contract import BackendContract, ContractPhotos
    from facetrail.testing.tagging_contract import TaggingContract

    class TestMyBackend(BackendContract, TaggingContract):
        @pytest.fixture
        def backend(self) -> Iterator[Backend]: ...      # fresh: no collections
        @pytest.fixture
        def photos(self) -> ContractPhotos: ...          # where the contract photos are

Importing these modules needs pytest (facetrail's dev extra).
"""
