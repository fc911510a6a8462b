-- placeholder until the audit branch is merged (not committed)
SELECT 1;
