"""Integrity of the count: review of flagged and quarantined responses (review_queue, decide),
moving tally rows with each decision in one transaction."""
