-- What a CRM event said, so that its id reused with another body is refused
-- (409) instead of answered as a duplicate. Rows from before hold NULL: their
-- body is not known, and a repeat of them is taken as the same event.
ALTER TABLE crm_events ADD COLUMN body TEXT;
