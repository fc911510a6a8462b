"""Snapshot labels in the scripts customers and technicians type in.

tests/snapshots/test_render.py and tests/browser/test_shapes.py draw each of them, on
the server and in the browser.
"""

# A label per script, as a customer or a technician would type it ("open the valve").
SCRIPTS = {
    "latin": "Ventil öffnen, Düse prüfen, façade",
    "greek": "Άνοιξε τη βαλβίδα",
    "cyrillic": "Откройте клапан",
    "arabic": "افتح الصمام",
    "hebrew": "פתח את השסתום",
    "cjk": "打开阀门 バルブ 밸브",
    "devanagari": "वाल्व खोलें",
}
