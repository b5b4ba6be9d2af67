# Fault injection under load (`make chaos`): the real stack, one fault after another, every
# acknowledged answer checked in SQL; writes chaos-results/ and RELIABILITY.md.
