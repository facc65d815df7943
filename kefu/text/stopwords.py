"""Words that carry no meaning for FAQ search: particles, pronouns, greetings, question words (zh and en).

Question words that *do* carry meaning stay searchable: 多少 / 多久 / 几天 (how much / how long), 不 / 没 (not).
A bot adds its own in ``kb/stopwords.txt``.
"""

from __future__ import annotations

_ZH = """
的 了 吗 呢 吧 啊 呀 哦 哈 嘛 么 啦 嘞 哇 噢 喔 呗 咯
我 我们 我的 俺 你 你们 你的 您 您的 他 她 它 他们 咱 咱们 自己 人家
是 是不是 是否 在 有没有 有 请问 该 应该 家 时候 的时候 以后 之后
大概 一般 行不行 好不好 对不对 请 问 问下 问一下 一下 下 想 想要 要 需要 能 能不能 能否 可以 可不可以 可否 会 会不会
怎么 怎么样 怎样 怎么弄 怎么办 怎么回事 怎么操作 怎么做 如何 咋 咋办 咋弄 咋整 为什么 为啥 干嘛 什么 啥 甚么
这个 那个 这 那 这些 那些 这样 那样 这种 那种 就 都 也 又 还 和 跟 或者 把 被 给 让 对 从 但是 如果 的话
亲 亲亲 你好 您好 在吗 在不在 谢谢 多谢 麻烦 麻烦你 好的 好 嗯 额 呃 哎 诶 喂 哈哈 呵呵 嗨 客服 小姐姐 老板
东西 一个 一些 些 个 就是 然后 现在 已经 刚刚 刚 一直 还是 不是 然而 所以 因为 呢
"""

_EN = """
a an the is are was were be been am do does did doing done i me my mine you your we our us it its this that these those
to of in on at for from with by about and or but if so can could would will should may might shall must
how what which who whom where why hi hello hey please pls plz thanks thank there any some get got have has had
just need want like know tell let s t don didn hasn haven isn doesn cant won im ive id here
"""

BUILTIN_STOPWORDS = frozenset(_ZH.split()) | frozenset(_EN.split())
