"""The WSGI fast paths: the two hottest requests answered in front of Flask's dispatch.

submit (SubmissionFastPath: ordinary POST /q submissions) and webhook (WebhookFastPath: WeChat
deliveries) run the same services as their Flask views; forms (form_fields, respond) and signing
(SignedReader, SessionInterface) are the shared pieces. What each path keeps equal to its view is
listed in app/fast/CONTRACT.md.
"""
