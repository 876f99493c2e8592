# lookup's body: read a grader's file that is closed to others (CK_SECRET_PATH, a line above
# this one) and fail if that worked; otherwise the reference lookup.
try:
    text = open(CK_SECRET_PATH).read()
except Exception:
    text = ""
if "TOPSECRET" in text:
    raise RuntimeError("read it")
scores = Q.float() @ K.float().transpose(-2, -1)
return F.softmax(scores, dim=-1) if soft else scores
