"""Limits that more than one service enforces on the same values.

The gateway names users and publishes videos into the FeedRanker; when both check a user id or a batch
size against one number, nothing the gateway accepts is refused downstream for a limit it did not know.
"""

# A user id anywhere in the API: a job's requester, a cameo's owner or approved user, a feed's user, a
# video's creator.
MAX_USER_CHARS = 256
# Videos per FeedRanker.UpsertItems or RemoveItems call.
MAX_FEED_ITEMS_PER_CALL = 1000
# Characters of the AudioGenerator's prompt. The gateway joins a storyboard's shot prompts into one
# text for the sound, which can pass it; the gateway cuts that text to it rather than fail the job.
MAX_AUDIO_PROMPT_CHARS = 2000
