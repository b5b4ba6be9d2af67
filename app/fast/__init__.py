"""The WSGI fast paths: the citizen's hottest requests answered in front of Flask's dispatch.

submit (SubmissionFastPath: ordinary POST /q submissions), webhook (WebhookFastPath: WeChat
deliveries), questionnaire (QuestionnaireFastPath: the empty questionnaire of a citizen with an
identity) and callback (OAuthCallbackFastPath: WeChat's OAuth callback) run the same services as
their Flask views; forms (form_fields, respond, app_context) and signing (SignedReader,
SessionCookie, SessionInterface) are the shared pieces. What each path keeps equal to its view is
listed in app/fast/CONTRACT.md.
"""
