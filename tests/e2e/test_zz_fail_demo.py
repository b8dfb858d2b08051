async def test_fails(running_services) -> None:
    assert False, "deliberate"
