"""`tradebot remote`: status and halt from a phone, through a Telegram bot, that can only reduce
risk.

* `token`: where the bot's token comes from (environment or a 0600 file, never config.toml) and
  how it is kept out of every output.
* `bot_api`: a small Bot API client on the standard library, each request bounded by a total
  deadline (a server that drips bytes cannot hold it).
* `commands`: what an update means, as a pure function of (update, allow-list, now, state).
* `messages`: the texts the phone reads (New York time).
* `offset`, `lock`: the persisted update offset (nothing handled twice) and one poller per bot.
* `service`: the long-polling loop that ties them together; `outbound`: alerts to the same chat.
"""
