"""The chaos run: syncline under load and faults, checked through the systems' own APIs.

``python -m chaos --seed N`` (``make chaos``) starts three simulated systems and the daemon as
separate ``syncline run`` processes, plays a seeded workload of people's creates, edits and
deletes, and meanwhile kills workers and the broker and makes the systems fail. At quiescence
it checks what a user would: no record differs, no edit is lost, no duplicate, no echo write.

- :mod:`chaos.plan`: the seeded schedule (what happens when), pure;
- :mod:`chaos.workload`: the people, and the log of what they did and saw;
- :mod:`chaos.fleet`: the worker processes and the broker;
- :mod:`chaos.verdict`: the checks, pure, from the log and the final states;
- :mod:`chaos.run`: all of it together.
"""
