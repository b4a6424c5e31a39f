"""Grading a class: many students' answers judged with :mod:`backprop.verification`, scored, reported.

An assignment (:mod:`~backprop.grading.manifest`: questions, each a gradient of one spec, with
weights, chain modes, aliases and a partial-credit policy) and the answers
(:mod:`~backprop.grading.answers`: CSV, JSON or a student's text file) go to
:func:`~backprop.grading.grade.grade_class`, which judges each distinct answer once with one
Verifier per spec; :mod:`~backprop.grading.tables`, :mod:`~backprop.grading.feedback` and
:mod:`~backprop.grading.gradescope` write what an instructor hands on: a score table, a page per
student, Gradescope's ``results.json``.
"""
