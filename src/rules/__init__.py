"""Small pure rules, one value at a time: identifiers, custom/app data values, geo codes, yes/no."""
