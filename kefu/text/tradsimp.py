"""Traditional → simplified Chinese for common characters: a small built-in table, no downloads.

It covers the characters shoppers actually type about orders, shipping, payment, returns and accounts (and
the everyday words around them). Characters that are also ordinary simplified characters (著, 乾, 藉 …) are
left alone, so simplified text is never changed.
"""

from __future__ import annotations

# Pairs of (traditional, simplified), written as two aligned strings, 20 characters per line.
_TRAD = (
    "運費貨換發髮單號碼優會員帳賬戶錢買賣購價貴"
    "這裡裏麼嗎們個時間還沒現樣為說給讓問題開關"
    "應該讀寫過從來對幾點見覺學實際氣話語請謝認"
    "識護訂記計設證詢試詳誤論調談變貼賠質贈資貸"
    "負責錯鐘鏈銀鋪鋼長門閉閱陽陸隊險隨雙雜難電"
    "靈頁項須順預領頭顏額類顧風飛飯館馬驗體髒魚"
    "鳥齊龍寶寬審將專尋導屬層歲幣帶幫廣廠張彈強"
    "後徑復複愛態慣戰戲擇據擔攜損搶撥擊擴數斷無"
    "舊書條東極樂標機權歡歷殘毀決溝滿漲濕熱燈狀"
    "獲環產畫當疊盡監盤確禮稅穩筆節範簡簽糧紅約"
    "級紙純細終組結絕統絲經綠維綁網線練編緩總續"
    "縮罰聯聲聽職脫腦膠臉與舉興藝莊萬葉蘭處補裝"
    "襪規視親覽觀觸訊許訴註詞該誠課諮講趕跡車軟"
    "較輕輸轉辦農進達違遠適遞選遺邊郵鄉醫釋針鈕"
    "銷錄錶鍵鎖鏡鐵閃閒闆隻雖離靜響頂頻顆顯飾餘"
    "驚鬆麥黃壓壞夠夢奪婦孫區協衛參啟嚴團園圖圓"
    "執報場塊墊備傳傷億儀償兒內兩冊凍別刪則剛創"
    "劃勁動務勝勞勢匯喚嘆噴寵屆幹並庫廢彎憑掃掛"
    "採揀揚摺撐擁擋擾攝敵於暫曬曆櫃檢歐殼況測湯"
    "溫滾潔濾灑燒燙營爭獎瑪畢異療癢皺種積稱穀競"
    "籃籤糾紀紋納紐紗紮絡絨綜綿緊緣縫繡繩繳纖羅"
    "習聖聞膚蘋藍蝦衝製襯訪評詩誌諒謊譜議貓貿賀"
    "賞賴賽趨蹤軌軍載輔輛輪辭邏醬鋁錦鍋鑰閘闊陣"
    "陰陳隱雞雲霧韓頸頓願飄驅鬧鮮鴨鹽麗齡週準臺"
    "檯颱儘彙衹劵償頒藥貨幣戶號碼訊騙蓋據剩濃釦"
)
_SIMP = (
    "运费货换发发单号码优会员账账户钱买卖购价贵"
    "这里里么吗们个时间还没现样为说给让问题开关"
    "应该读写过从来对几点见觉学实际气话语请谢认"
    "识护订记计设证询试详误论调谈变贴赔质赠资贷"
    "负责错钟链银铺钢长门闭阅阳陆队险随双杂难电"
    "灵页项须顺预领头颜额类顾风飞饭馆马验体脏鱼"
    "鸟齐龙宝宽审将专寻导属层岁币带帮广厂张弹强"
    "后径复复爱态惯战戏择据担携损抢拨击扩数断无"
    "旧书条东极乐标机权欢历残毁决沟满涨湿热灯状"
    "获环产画当叠尽监盘确礼税稳笔节范简签粮红约"
    "级纸纯细终组结绝统丝经绿维绑网线练编缓总续"
    "缩罚联声听职脱脑胶脸与举兴艺庄万叶兰处补装"
    "袜规视亲览观触讯许诉注词该诚课咨讲赶迹车软"
    "较轻输转办农进达违远适递选遗边邮乡医释针钮"
    "销录表键锁镜铁闪闲板只虽离静响顶频颗显饰余"
    "惊松麦黄压坏够梦夺妇孙区协卫参启严团园图圆"
    "执报场块垫备传伤亿仪偿儿内两册冻别删则刚创"
    "划劲动务胜劳势汇唤叹喷宠届干并库废弯凭扫挂"
    "采拣扬折撑拥挡扰摄敌于暂晒历柜检欧壳况测汤"
    "温滚洁滤洒烧烫营争奖玛毕异疗痒皱种积称谷竞"
    "篮签纠纪纹纳纽纱扎络绒综绵紧缘缝绣绳缴纤罗"
    "习圣闻肤苹蓝虾冲制衬访评诗志谅谎谱议猫贸贺"
    "赏赖赛趋踪轨军载辅辆轮辞逻酱铝锦锅钥闸阔阵"
    "阴陈隐鸡云雾韩颈顿愿飘驱闹鲜鸭盐丽龄周准台"
    "台台尽汇只券偿颁药货币户号码讯骗盖据剩浓扣"
)

TRAD_TO_SIMP: dict[int, str] = {ord(t): s for t, s in zip(_TRAD, _SIMP, strict=True) if t != s}


def to_simplified(text: str) -> str:
    """``text`` with the common traditional characters replaced by their simplified forms."""
    return text.translate(TRAD_TO_SIMP)
