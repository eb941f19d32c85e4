"""The held-out text perplexity is measured on when the spec names none: plain English prose written
for this purpose, so no model trained here or on the web has seen it word for word."""

HELD_OUT_TEXT = """\
The lighthouse keeper kept two notebooks. In the first he wrote the weather every four hours: the
direction of the wind, the height of the swell, whether the fog had come down over the point. In the
second he wrote everything else, which was mostly about the birds. Over eleven winters he counted
the gannets that passed the rock in the first week of March, and he noticed that they came a little
earlier each year, though never by more than a day or two.

Bread rises because yeast eats the sugars in the flour and breathes out carbon dioxide. The gluten,
a web of proteins that forms when the dough is kneaded, traps the gas in small pockets. A dough that
is too cold rises slowly and tastes sour; one that is too warm rises quickly and collapses in the
oven. Most bakers learn to judge it by touch: a loaf is ready when a finger pressed into it leaves a
dent that fills back slowly.

When the town council voted to move the market from the square to the old railway yard, the
traders complained that nobody would walk that far. For a month the stalls stood half empty. Then a
man who sold coffee from a bicycle set up at the corner where the footpath meets the canal, and the
people who stopped for a cup began to wander in. By the summer the yard was busier than the square
had ever been, and the council took credit for the idea.

A river does not run straight for long. Where the current is fast it cuts into the outer bank, and
where it is slow it drops the sand and gravel it carries on the inner bank. Over centuries the bends
grow wider, until in a flood the water breaks through the narrow neck of land between two of them
and leaves the old loop behind as a quiet, curved lake.

She had learned to play the cello at the age of forty, after her children had left home. At first
the instrument seemed enormous and the bow would not obey her; every note began with a scratch. Her
teacher told her to practise slowly, a single scale each morning, listening to the end of each note
as carefully as to its start. Two years later she played in the back row of the town orchestra, and
nobody could tell that she had started late.

The first printed maps were copied from manuscripts, errors and all. An island that a sailor had
drawn in the wrong place could survive on paper for a century, because each engraver trusted the
one before him. It took careful surveys, measured with chains and telescopes across whole countries,
before the coastlines on the page began to match the ones on the ground.
"""
