"""`python -m src`: run the actor. Guarded, because worker processes (`events.workers`) import this module
again as `__mp_main__` when they start, and must not start a run of their own."""

if __name__ == "__main__":
    import asyncio

    from .main import main

    asyncio.run(main())
