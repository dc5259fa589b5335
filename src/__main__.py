"""`python -m src`: run the actor."""

if __name__ == "__main__":
    import asyncio

    from .main import main

    asyncio.run(main())
